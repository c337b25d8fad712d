import os
import sys

sys.path.append(os.curdir)
from pelicanconf import *  # noqa: F403

SITEURL = "https://market.example.fr"
RELATIVE_URLS = False

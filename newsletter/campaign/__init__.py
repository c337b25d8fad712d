"""Campaigns: every delivery guarantee lives in this package.

identity    what a campaign *is* (a digest's window, a blast's posts, the audience)
service     send, resume, cancel, test sends, status: the rules the CLI and scripts share
dispatcher  batches, ledger transitions, retries, the failure brake
pacing      per-second and per-hour limits, backoff
lock        one sender per campaign
"""

"""Web endpoints (composition roots): ``app`` (unsubscribe + webhooks) and ``preview``."""

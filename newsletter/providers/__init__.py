"""Email service providers: one package each (only SendGrid so far)."""

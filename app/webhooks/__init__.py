"""Webhook subscribers: subscriptions, the SSRF guard, signing, and the dispatcher that follows the log."""

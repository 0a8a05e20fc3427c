"""Knowing whom a grant goes to: clinician credentials, presentations, trust lists, the check."""

"""SMART Health Links: the link payload, its encrypted files, QR codes and the relay client."""

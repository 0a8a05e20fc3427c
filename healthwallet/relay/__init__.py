"""The SMART Health Links relay: its wire protocol, HTTP server and link storage."""

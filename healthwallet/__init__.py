"""healthwallet: a patient-held health wallet for the command line."""

__version__ = "0.1.0"

"""uebench: unlearnable-example methods against countermeasures, one protocol, one leaderboard."""
__version__ = "0.1.0"

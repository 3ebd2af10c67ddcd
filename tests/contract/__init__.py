"""The connector contract: what every channel does the same way (see test_contract.py)."""

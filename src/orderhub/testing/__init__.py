"""Fakes and a switchable test channel, importable by adapter packages' tests."""

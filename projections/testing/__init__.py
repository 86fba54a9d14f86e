"""Test and benchmark helpers (synthetic histories); never imported by a running process."""

"""Checks for the exercises of lesson 05 (see SPEC.md)."""

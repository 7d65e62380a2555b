"""Checks for the exercises of lesson 03 (see SPEC.md)."""

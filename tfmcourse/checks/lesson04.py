"""Checks for the exercises of lesson 04 (see SPEC.md)."""

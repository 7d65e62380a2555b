"""Checks for the exercises of lesson 07 (see SPEC.md)."""

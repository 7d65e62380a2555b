"""Checks for the exercises of lesson 08 (see SPEC.md)."""

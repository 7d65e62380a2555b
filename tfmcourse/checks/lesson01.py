"""Checks for the exercises of lesson 01 (see SPEC.md)."""

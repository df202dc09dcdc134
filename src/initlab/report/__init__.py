"""Rendering only: terminal tables, matplotlib figures, self-contained HTML, JSON."""

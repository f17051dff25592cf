"""Rendering of summaries and comparisons: terminal (rich), Markdown, HTML, JUnit."""

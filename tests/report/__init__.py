"""Tests of the effectiveness report: gathering its numbers from tracked runs, rendering it, its formats."""

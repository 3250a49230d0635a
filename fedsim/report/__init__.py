"""The effectiveness report for policymakers (issue 12): data (gather), words and figures (render)."""

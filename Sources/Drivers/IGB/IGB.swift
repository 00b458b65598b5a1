// IGB miniport (issue 7).

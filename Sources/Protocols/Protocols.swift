// Protocol modules (issue 8).

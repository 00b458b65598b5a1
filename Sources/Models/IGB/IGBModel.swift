// Hardware model of the 82576 (issue 6).

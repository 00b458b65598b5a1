// NDIS core (issue 5).

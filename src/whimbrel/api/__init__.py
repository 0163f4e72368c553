"""The REST API: a thin front end that builds ops and returns jobs."""

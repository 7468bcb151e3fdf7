"""salient's service layer and command line (`salient`)."""

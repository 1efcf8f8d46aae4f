"""What the chapters show: tables and figures built from the result records of one experiment each (the
experiments themselves are in `repro.experiments`; the statistics in `repro.stats`)."""

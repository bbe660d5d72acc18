DELETE FROM ingest_stage WHERE line = ANY(:lines)

-- Every time a version became champion, newest first.
SELECT id, version, event, created_at FROM model_events
WHERE event IN ('promoted', 'rolled_back')
ORDER BY id DESC

-- PostgreSQL: enough sort memory for the staged upsert to sort in memory (this transaction only).
SET LOCAL work_mem = '256MB'

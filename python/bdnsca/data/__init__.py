"""Data in and out: corpus, query, qrels and run readers and writers with file:line errors,
atomic writes, run folders, and the bundled NPC world generator."""

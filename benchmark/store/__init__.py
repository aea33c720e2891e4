"""Where results live: the row schema (`row`), the append-only rows of a run folder and the published ones
(`rows`), and the content-addressed artifact cache (`cache`)."""

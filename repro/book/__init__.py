"""The book layer: executing chapter notebooks and staging the site (:mod:`.stage`), the
notebook-side run context (:mod:`.notebook`), and the Methods index page (:mod:`.methods`)."""

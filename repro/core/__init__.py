"""Infrastructure every other package uses: profiles and devices (:mod:`.config`), the
content-addressed cache (:mod:`.cache`) and run provenance (:mod:`.provenance`).

Nothing here knows about a chapter, a method or the book."""

"""Infrastructure every other package uses: profiles and devices (:mod:`.config`) with their
per-chapter key schema (:mod:`.schema`), the content-addressed cache (:mod:`.cache`) whose keys carry
the fingerprint of the code that computes each entry (:mod:`.fingerprint`), the read-only store of
released artifacts (:mod:`.release`), the one registry class (:mod:`.registry`) and run provenance
(:mod:`.provenance`).

Nothing here knows about a chapter, a method or the book."""

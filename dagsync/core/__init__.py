"""The bottom layer: the one schema, the S3 key layout, document reading and writing, archives, the object-store
adapter, topology and resource names. Imports nothing from the layers above (an import contract holds this)."""

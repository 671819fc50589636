-- Items are now embedded as their text and their labels (category and tags) together, under
-- the encoder's name marked "+labels" (embeddings/encoder.py). The vectors of text alone
-- are never read again: they are dropped here, and each item is embedded again by the next
-- build (or the embedding its write scheduled).
DELETE FROM item_embeddings WHERE encoder NOT LIKE '%+labels';

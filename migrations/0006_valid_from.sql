-- When a request's validity starts: its creation, or the operator's retry (NULL: created).
ALTER TABLE requests ADD COLUMN valid_from INTEGER;

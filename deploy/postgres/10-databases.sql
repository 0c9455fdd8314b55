-- Run once by the postgres image on an empty data volume, as the POSTGRES_USER role
-- (`forgettable`), which therefore owns both databases. Each service gets its own database, so
-- their migrations never meet.
CREATE DATABASE users;
CREATE DATABASE images;

-- generated from control_plane/tools/infra/pg_auth.py (role_statements); do not edit
-- create roles
DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamplane_read_model') THEN
                CREATE ROLE streamplane_read_model LOGIN; END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamplane_api') THEN
                CREATE ROLE streamplane_api LOGIN; END IF; END $$;
-- read model rights
GRANT CONNECT, CREATE ON DATABASE streamplane TO streamplane_read_model;
-- read model on public
GRANT USAGE, CREATE ON SCHEMA public TO streamplane_read_model;
-- api connect
GRANT CONNECT ON DATABASE streamplane TO streamplane_api;
-- api on public
GRANT USAGE ON SCHEMA public TO streamplane_api;
-- api reads public
GRANT SELECT ON ALL TABLES IN SCHEMA public TO streamplane_api;
-- api reads new tables
ALTER DEFAULT PRIVILEGES FOR ROLE streamplane_read_model GRANT SELECT ON TABLES TO streamplane_api;
-- api sees new schemas
ALTER DEFAULT PRIVILEGES FOR ROLE streamplane_read_model GRANT USAGE ON SCHEMAS TO streamplane_api;

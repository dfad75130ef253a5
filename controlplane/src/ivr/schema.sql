-- The IVR's menus, shaped as the seeds shape them; created when missing
-- (an existing table with more columns is read as it is).
CREATE TABLE IF NOT EXISTS ivr_menus (
    menu_id VARCHAR(50) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL DEFAULT '',
    welcome_message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ivr_menu_options (
    menu_id VARCHAR(50) NOT NULL,
    digit VARCHAR(1) NOT NULL,
    action_type VARCHAR(20) NOT NULL,
    action_value TEXT,
    PRIMARY KEY (menu_id, digit)
);

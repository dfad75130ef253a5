-- The demo menus an empty database gets (`[ivr] seed_demo`).
INSERT INTO ivr_menus (menu_id, name, welcome_message) VALUES
    ('main', 'Main menu', 'Welcome to Tollgate. For sales press 1. For support press 2. For billing press 3. To speak to an agent press 0. To hear this again press star.'),
    ('billing', 'Billing', 'Billing. To hear your balance press 1. For the main menu press 9.');
INSERT INTO ivr_menu_options (menu_id, digit, action_type, action_value) VALUES
    ('main', '1', 'transfer', '6000'),
    ('main', '2', 'queue', 'support'),
    ('main', '3', 'menu', 'billing'),
    ('main', '0', 'transfer', 'agent'),
    ('main', '#', 'hangup', NULL),
    ('billing', '1', 'play', 'Your balance is zero.'),
    ('billing', '9', 'menu', 'main');

-- The schema the example "shop" suite describes: a multi-tenant shop (composite keys), Rails-style
-- polymorphic comments with single-table inheritance, an enum, soft-deleted rows.
CREATE TYPE order_state AS ENUM ('cart', 'placed', 'shipped', 'cancelled');
CREATE TABLE accounts (id bigint PRIMARY KEY, type text NOT NULL, email text);  -- Customer, Staff
CREATE TABLE products (shop_id int NOT NULL, sku text NOT NULL, price numeric(10, 2),
                       deleted_at timestamptz, PRIMARY KEY (shop_id, sku));
CREATE TABLE orders (id bigint PRIMARY KEY, shop_id int NOT NULL, account_id bigint,
                     state order_state NOT NULL, placed_at timestamptz);
CREATE TABLE order_lines (order_id bigint NOT NULL, line_no int NOT NULL, shop_id int NOT NULL,
                          sku text, quantity int, PRIMARY KEY (order_id, line_no));
CREATE TABLE comments (id bigint PRIMARY KEY, commentable_type text, commentable_id text,
                       author_id bigint, body text);

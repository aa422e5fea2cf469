-- A Rails 7.1 application's db/structure.sql, as its migrations would leave it: bigint ids
-- from sequences, timestamp(6) created_at/updated_at, polymorphic `*_type`/`*_id` pairs
-- holding class names (acts-as-taggable-on, comments, Active Storage, PaperTrail), single-
-- table inheritance (`users.type`), `t.references` with and without `foreign_key: true`, and
-- fk_rails_* foreign keys with each `on_delete:` (none, :cascade, :nullify, :restrict).

CREATE TABLE public.schema_migrations (version character varying NOT NULL PRIMARY KEY);
CREATE TABLE public.ar_internal_metadata (
    key character varying NOT NULL PRIMARY KEY,
    value character varying,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);

CREATE TABLE public.users (
    id bigserial PRIMARY KEY,
    type character varying DEFAULT 'User'::character varying NOT NULL,
    email character varying NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_users_on_email ON public.users USING btree (email);

CREATE TABLE public.suppliers (
    id bigserial PRIMARY KEY,
    name character varying,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);

CREATE TABLE public.coupons (
    id bigserial PRIMARY KEY,
    code character varying NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);

CREATE TABLE public.articles (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    title character varying,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_articles_on_user_id ON public.articles USING btree (user_id);

-- t.references :supplier, foreign_key: false
CREATE TABLE public.products (
    id bigserial PRIMARY KEY,
    supplier_id bigint,
    name character varying,
    price numeric(10,2),
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_products_on_supplier_id ON public.products USING btree (supplier_id);

CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    user_id bigint,
    coupon_id bigint,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_orders_on_user_id ON public.orders USING btree (user_id);
CREATE INDEX index_orders_on_coupon_id ON public.orders USING btree (coupon_id);

CREATE TABLE public.line_items (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    product_id bigint NOT NULL,
    quantity integer DEFAULT 1 NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_line_items_on_order_id ON public.line_items USING btree (order_id);
CREATE INDEX index_line_items_on_product_id ON public.line_items USING btree (product_id);

CREATE TABLE public.tags (
    id bigserial PRIMARY KEY,
    name character varying,
    taggings_count integer DEFAULT 0,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_tags_on_name ON public.tags USING btree (name);

CREATE TABLE public.taggings (
    id bigserial PRIMARY KEY,
    tag_id bigint,
    taggable_type character varying,
    taggable_id bigint,
    tagger_type character varying,
    tagger_id bigint,
    context character varying(128),
    created_at timestamp without time zone
);
CREATE INDEX index_taggings_on_tag_id ON public.taggings USING btree (tag_id);
CREATE INDEX taggings_taggable_context_idx
    ON public.taggings USING btree (taggable_id, taggable_type, context);

CREATE TABLE public.comments (
    id bigserial PRIMARY KEY,
    commentable_type character varying NOT NULL,
    commentable_id bigint NOT NULL,
    user_id bigint,
    body text,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_comments_on_commentable
    ON public.comments USING btree (commentable_type, commentable_id);

-- PaperTrail: versions outlive their item ('destroy' events keep the last state)
CREATE TABLE public.versions (
    id bigserial PRIMARY KEY,
    item_type character varying NOT NULL,
    item_id bigint NOT NULL,
    event character varying NOT NULL,
    whodunnit character varying,
    object jsonb,
    created_at timestamp(6) without time zone
);
CREATE INDEX index_versions_on_item_type_and_item_id
    ON public.versions USING btree (item_type, item_id);

CREATE TABLE public.active_storage_blobs (
    id bigserial PRIMARY KEY,
    key character varying NOT NULL,
    filename character varying NOT NULL,
    content_type character varying,
    metadata text,
    service_name character varying NOT NULL,
    byte_size bigint NOT NULL,
    checksum character varying,
    created_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_active_storage_blobs_on_key ON public.active_storage_blobs (key);

CREATE TABLE public.active_storage_attachments (
    id bigserial PRIMARY KEY,
    name character varying NOT NULL,
    record_type character varying NOT NULL,
    record_id bigint NOT NULL,
    blob_id bigint NOT NULL,
    created_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_active_storage_attachments_uniqueness
    ON public.active_storage_attachments USING btree (record_type, record_id, name, blob_id);

ALTER TABLE ONLY public.articles
    ADD CONSTRAINT fk_rails_3d31dad1cc FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.orders
    ADD CONSTRAINT fk_rails_f868b47f6a FOREIGN KEY (user_id) REFERENCES public.users(id)
    ON DELETE SET NULL;
ALTER TABLE ONLY public.line_items
    ADD CONSTRAINT fk_rails_2dc0b3e2e8 FOREIGN KEY (order_id) REFERENCES public.orders(id)
    ON DELETE CASCADE;
ALTER TABLE ONLY public.line_items
    ADD CONSTRAINT fk_rails_11e15d5c6b FOREIGN KEY (product_id) REFERENCES public.products(id)
    ON DELETE RESTRICT;
ALTER TABLE ONLY public.taggings
    ADD CONSTRAINT fk_rails_9fcd2e236b FOREIGN KEY (tag_id) REFERENCES public.tags(id)
    ON DELETE CASCADE;
ALTER TABLE ONLY public.comments
    ADD CONSTRAINT fk_rails_03de2dc08c FOREIGN KEY (user_id) REFERENCES public.users(id)
    ON DELETE SET NULL;
ALTER TABLE ONLY public.active_storage_attachments
    ADD CONSTRAINT fk_rails_c3b3935057 FOREIGN KEY (blob_id)
    REFERENCES public.active_storage_blobs(id);

INSERT INTO public.schema_migrations (version) VALUES
    ('20240301090000'), ('20240301090100'), ('20240301090200'), ('20240301090300'),
    ('20240301090400'), ('20240301090500'), ('20240301090600');
INSERT INTO public.ar_internal_metadata VALUES
    ('environment', 'production', '2024-03-01 09:00:00', '2024-03-01 09:00:00'),
    ('schema_sha1', 'e3f1c0ffee', '2024-03-01 09:00:00', '2024-03-01 09:00:00');

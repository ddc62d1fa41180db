-- The mirror of a WeCom directory: the public interface documented in README.md.
-- Every primary key starts with corp_id so one database serves many corps.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS wecom;

CREATE TABLE wecom.users (
    corp_id         text        NOT NULL,
    userid          text        NOT NULL,
    name            text,
    alias           text,
    position        text,
    mobile          text,
    email           text,
    biz_mail        text,
    gender          smallint,
    status          smallint,
    main_department bigint,
    avatar          text,
    telephone       text,
    address         text,
    open_userid     text,
    extattr         jsonb,
    -- The latest full record as WeCom returned or called it back.
    raw             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Fields the mirror could not learn (a minimal callback whose lookup was refused);
    -- their columns are NULL rather than invented.
    unknown_fields  text[]      NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corp_id, userid)
);
CREATE INDEX users_mobile_idx ON wecom.users (corp_id, mobile) WHERE mobile IS NOT NULL AND mobile <> '';
CREATE INDEX users_email_idx ON wecom.users (corp_id, lower(email)) WHERE email IS NOT NULL AND email <> '';
CREATE INDEX users_main_department_idx ON wecom.users (corp_id, main_department);

CREATE TABLE wecom.user_departments (
    corp_id       text    NOT NULL,
    userid        text    NOT NULL,
    department_id bigint  NOT NULL,
    sort_order    bigint  NOT NULL DEFAULT 0,
    is_leader     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (corp_id, userid, department_id)
);
CREATE INDEX user_departments_department_idx ON wecom.user_departments (corp_id, department_id);

CREATE TABLE wecom.departments (
    corp_id    text        NOT NULL,
    id         bigint      NOT NULL,
    name       text,
    name_en    text,
    parent_id  bigint,
    sort_order bigint,
    raw        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    unknown_fields text[]  NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corp_id, id)
);
CREATE INDEX departments_parent_idx ON wecom.departments (corp_id, parent_id);

CREATE TABLE wecom.tags (
    corp_id text   NOT NULL,
    tag_id  bigint NOT NULL,
    name    text,
    PRIMARY KEY (corp_id, tag_id)
);

CREATE TABLE wecom.tag_users (
    corp_id text   NOT NULL,
    tag_id  bigint NOT NULL,
    userid  text   NOT NULL,
    PRIMARY KEY (corp_id, tag_id, userid)
);
CREATE INDEX tag_users_userid_idx ON wecom.tag_users (corp_id, userid);

CREATE TABLE wecom.tag_departments (
    corp_id       text   NOT NULL,
    tag_id        bigint NOT NULL,
    department_id bigint NOT NULL,
    PRIMARY KEY (corp_id, tag_id, department_id)
);
CREATE INDEX tag_departments_department_idx ON wecom.tag_departments (corp_id, department_id);

-- The append-only change log. seq orders changes per corp (and globally).
CREATE TABLE wecom.changes (
    corp_id  text        NOT NULL,
    seq      bigint      GENERATED ALWAYS AS IDENTITY,
    entity   text        NOT NULL CHECK (entity IN ('user', 'department', 'tag')),
    key      text        NOT NULL,
    op       text        NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    before   jsonb,
    after    jsonb,
    source   text        NOT NULL,
    event_id text,
    at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corp_id, seq)
);
CREATE INDEX changes_entity_key_idx ON wecom.changes (corp_id, entity, key);
CREATE INDEX changes_at_idx ON wecom.changes (at);

-- +goose Down
DROP SCHEMA wecom CASCADE;

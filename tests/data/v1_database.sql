-- A yihu database made by the v1 schema (alembic 0001, commit 94b854c): the sample roster's group g1
-- bound, three members linked, one open fire alert with its escalation due and four outbox rows pending.
-- tests/core/test_upgrade.py loads it and upgrades it in place (yihu db upgrade).
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0001');
CREATE TABLE grid (
	id INTEGER NOT NULL, 
	code VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	head_ack_s INTEGER NOT NULL, 
	worker_ack_s INTEGER NOT NULL, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "grid" VALUES(1,'lc3','兰城街道第三网格',60,200,1);
INSERT INTO "grid" VALUES(2,'lc4','兰城街道第四网格',120,300,1);
CREATE TABLE grid_staff (
	id INTEGER NOT NULL, 
	grid_id INTEGER NOT NULL, 
	member_id INTEGER NOT NULL, 
	role VARCHAR(32) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(grid_id) REFERENCES grid (id), 
	FOREIGN KEY(member_id) REFERENCES member (id), 
	UNIQUE (grid_id, member_id, role)
);
INSERT INTO "grid_staff" VALUES(1,1,7,'grid_worker');
INSERT INTO "grid_staff" VALUES(2,1,9,'police');
INSERT INTO "grid_staff" VALUES(3,1,10,'women_fed');
INSERT INTO "grid_staff" VALUES(4,2,8,'grid_worker');
INSERT INTO "grid_staff" VALUES(5,2,9,'police');
CREATE TABLE household (
	id INTEGER NOT NULL, 
	group_id INTEGER NOT NULL, 
	label VARCHAR(100) NOT NULL, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(group_id) REFERENCES household_group (id), 
	UNIQUE (group_id, label)
);
INSERT INTO "household" VALUES(1,1,'1号户',1);
INSERT INTO "household" VALUES(2,1,'2号户',1);
INSERT INTO "household" VALUES(3,2,'1号户',1);
INSERT INTO "household" VALUES(4,2,'2号户',1);
INSERT INTO "household" VALUES(5,3,'1号户',1);
CREATE TABLE household_group (
	id INTEGER NOT NULL, 
	code VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	grid_id INTEGER NOT NULL, 
	head_id INTEGER, 
	bind_code VARCHAR(64) NOT NULL, 
	chat_id BIGINT, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(grid_id) REFERENCES grid (id), 
	CONSTRAINT fk_household_group_head_id FOREIGN KEY(head_id) REFERENCES member (id), 
	UNIQUE (bind_code), 
	UNIQUE (chat_id)
);
INSERT INTO "household_group" VALUES(1,'g1','第一联防组',1,1,'attzyvauvh',-100500,1);
INSERT INTO "household_group" VALUES(2,'g2','第二联防组',1,4,'b35erdq5rv',NULL,1);
INSERT INTO "household_group" VALUES(3,'g3','第三联防组',2,6,'84c8r9dtp7',NULL,1);
CREATE TABLE incident (
	id INTEGER NOT NULL, 
	group_id INTEGER NOT NULL, 
	reporter_id INTEGER NOT NULL, 
	category VARCHAR(32) NOT NULL, 
	text VARCHAR, 
	status VARCHAR(16) NOT NULL, 
	private BOOLEAN NOT NULL, 
	escalation_level INTEGER NOT NULL, 
	acknowledged_by_id INTEGER, 
	acknowledged_at DATETIME, 
	next_escalation_at DATETIME, 
	latitude FLOAT, 
	longitude FLOAT, 
	created_at DATETIME NOT NULL, 
	last_raised_at DATETIME NOT NULL, 
	closed_at DATETIME, 
	closed_by_id INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(acknowledged_by_id) REFERENCES member (id), 
	FOREIGN KEY(closed_by_id) REFERENCES member (id), 
	FOREIGN KEY(group_id) REFERENCES household_group (id), 
	FOREIGN KEY(reporter_id) REFERENCES member (id)
);
INSERT INTO "incident" VALUES(1,1,2,'fire','厨房着火','open',0,0,NULL,NULL,'2026-12-07 17:57:01.911323',NULL,NULL,'2026-12-07 17:56:01.911323','2026-12-07 17:56:01.911323',NULL,NULL);
CREATE TABLE incident_event (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	actor_id INTEGER, 
	detail VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(actor_id) REFERENCES member (id), 
	FOREIGN KEY(incident_id) REFERENCES incident (id)
);
INSERT INTO "incident_event" VALUES(1,1,'2026-12-07 17:56:01.911323','raised',2,'fire');
CREATE TABLE member (
	id INTEGER NOT NULL, 
	"key" VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	phone VARCHAR(32), 
	role VARCHAR(32) NOT NULL, 
	household_id INTEGER, 
	invite_token VARCHAR(64) NOT NULL, 
	telegram_user_id BIGINT, 
	language_code VARCHAR(16), 
	linked_at DATETIME, 
	unreachable_at DATETIME, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES household (id), 
	UNIQUE (invite_token), 
	UNIQUE (telegram_user_id)
);
INSERT INTO "member" VALUES(1,'m1','张三','13800000001','villager',1,'fodc1ZnB9w6Y6jBVX306hA',1001,'zh','2026-12-07 17:56:01.911323',NULL,1);
INSERT INTO "member" VALUES(2,'m2','李四',NULL,'villager',1,'05nNP8nWFrsuY9pfqP6-Gg',1002,'zh','2026-12-07 17:56:01.911323',NULL,1);
INSERT INTO "member" VALUES(3,'m3','王五',NULL,'villager',2,'vzOQLr_Z6Ryutx5LLmlHAw',1003,'zh','2026-12-07 17:56:01.911323',NULL,1);
INSERT INTO "member" VALUES(4,'m4','赵六',NULL,'villager',3,'_ZuysXQW7TizaxYMianEpg',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(5,'m5','孙七',NULL,'villager',4,'m7hQ7p5MzLZ4RGjCLSHTog',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(6,'m6','周八',NULL,'villager',5,'2aNhcaQbooXV_f9CaVU6-w',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(7,'w1','王网格',NULL,'grid_worker',NULL,'DWL9GzGDymBMJ2UWxNUZzg',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(8,'w2','钱网格',NULL,'grid_worker',NULL,'kUQzJ7qFqnbJUr4mBLnmAg',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(9,'p1','赵警官',NULL,'police',NULL,'T1_3akl3Iur_jkOi1cjprg',NULL,NULL,NULL,NULL,1);
INSERT INTO "member" VALUES(10,'f1','刘执委',NULL,'women_fed',NULL,'T_uGSbKgUwUCMM6Yk4iRFQ',NULL,NULL,NULL,NULL,1);
CREATE TABLE notification (
	id INTEGER NOT NULL, 
	incident_id INTEGER, 
	recipient_id INTEGER, 
	group_id INTEGER, 
	chat_id BIGINT, 
	purpose VARCHAR(16) NOT NULL, 
	priority VARCHAR(16) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	payload JSON NOT NULL, 
	dedupe_key VARCHAR(200), 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	last_error VARCHAR, 
	telegram_message_id BIGINT, 
	duplicates INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	claimed_at DATETIME, 
	sent_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(group_id) REFERENCES household_group (id), 
	FOREIGN KEY(incident_id) REFERENCES incident (id), 
	FOREIGN KEY(recipient_id) REFERENCES member (id), 
	UNIQUE (dedupe_key)
);
INSERT INTO "notification" VALUES(1,1,2,NULL,1002,'confirmation','urgent','message','{"template": "confirmation", "told": 2, "joined": false, "recipients": []}','confirm:1:1','pending',0,NULL,NULL,0,'2026-12-07 17:56:01.911323','2026-12-07 17:56:01.911323',NULL,NULL);
INSERT INTO "notification" VALUES(2,1,1,NULL,1001,'alert','urgent','message','{"template": "alert"}','alert:1:1','pending',0,NULL,NULL,0,'2026-12-07 17:56:01.911323','2026-12-07 17:56:01.911323',NULL,NULL);
INSERT INTO "notification" VALUES(3,1,3,NULL,1003,'alert','urgent','message','{"template": "alert"}','alert:1:3','pending',0,NULL,NULL,0,'2026-12-07 17:56:01.911323','2026-12-07 17:56:01.911323',NULL,NULL);
INSERT INTO "notification" VALUES(4,1,NULL,1,-100500,'alert','urgent','message','{"template": "alert"}','group:1','pending',0,NULL,NULL,0,'2026-12-07 17:56:01.911323','2026-12-07 17:56:01.911323',NULL,NULL);
CREATE TABLE processed_update (
	id INTEGER NOT NULL, 
	bot_id BIGINT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	ext_id VARCHAR(64) NOT NULL, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (bot_id, kind, ext_id)
);
CREATE TABLE referral (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	department VARCHAR(32) NOT NULL, 
	referred_by_id INTEGER, 
	created_at DATETIME NOT NULL, 
	due_at DATETIME NOT NULL, 
	done_at DATETIME, 
	note VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(incident_id) REFERENCES incident (id), 
	FOREIGN KEY(referred_by_id) REFERENCES member (id)
);
CREATE TABLE response (
	id INTEGER NOT NULL, 
	incident_id INTEGER NOT NULL, 
	member_id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(incident_id) REFERENCES incident (id), 
	FOREIGN KEY(member_id) REFERENCES member (id), 
	UNIQUE (incident_id, member_id)
);
CREATE UNIQUE INDEX ix_grid_code ON grid (code);
CREATE UNIQUE INDEX ix_household_group_code ON household_group (code);
CREATE INDEX ix_household_group_grid_id ON household_group (grid_id);
CREATE INDEX ix_household_group_id ON household (group_id);
CREATE INDEX ix_member_household_id ON member (household_id);
CREATE UNIQUE INDEX ix_member_key ON member ("key");
CREATE INDEX ix_grid_staff_grid_id ON grid_staff (grid_id);
CREATE INDEX ix_grid_staff_member_id ON grid_staff (member_id);
CREATE INDEX ix_incident_group_id ON incident (group_id);
CREATE INDEX ix_incident_next_escalation_at ON incident (next_escalation_at);
CREATE INDEX ix_incident_reporter_status ON incident (reporter_id, status);
CREATE INDEX ix_incident_status ON incident (status);
CREATE INDEX ix_incident_event_incident_id ON incident_event (incident_id);
CREATE INDEX ix_notification_incident_id ON notification (incident_id);
CREATE INDEX ix_notification_status_due ON notification (status, next_attempt_at);
CREATE INDEX ix_referral_incident_id ON referral (incident_id);
CREATE INDEX ix_response_incident_id ON response (incident_id);
COMMIT;

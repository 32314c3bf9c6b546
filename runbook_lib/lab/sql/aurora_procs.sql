-- The lab's Aurora stand-in: Aurora MySQL's external-replication procedures in the `mysql` schema.
--
-- Loaded by runbook_lib.lab.aurora_standin.install_aurora_standin(), which runs it with
-- sql_log_bin=0 as a superuser after creating `rdsadmin`@`localhost`.  The file follows the mysql
-- client's DELIMITER convention (a line `DELIMITER x` switches the statement terminator), so it
-- can also be fed to `mysql` by hand:  mysql -uroot < aurora_procs.sql
--
-- Public names and argument lists are Aurora's (AWS "Aurora MySQL stored procedure reference"):
--   both generations       rds_start_replication, rds_stop_replication, rds_skip_repl_error,
--                          rds_skip_transaction_with_gtid(gtid_to_skip), rds_set_configuration(name, value),
--                          rds_show_configuration
--   Aurora 2 names         rds_set_external_master_with_auto_position(host_name, host_port,
--                          replication_user_name, replication_user_password, ssl_encryption),
--                          rds_reset_external_master, rds_set_master_auto_position(auto_position_mode)
--   Aurora 3 names         rds_set_external_source_with_auto_position(...same five...),
--                          rds_reset_external_source, rds_set_source_auto_position(auto_position_mode)
--   Aurora 3.04+ and 8.4   rds_gtid_purged(gtid_set)
--   Aurora 3.06+ and 8.4   rds_set_binlog_source_ssl(mode)   (TLS of the external channel)
--   2.09.2-2.11.0, 3.01.1+ rds_import_binlog_ssl_material(ssl_material), rds_remove_binlog_ssl_material
-- ssl_encryption is accepted and ignored, as AWS documents it for Aurora ("isn't currently implemented").
-- The installer drops what the emulated version lacks (aurora_standin.procedures_for): the Aurora 3 names
-- on Aurora 2, the Aurora 2 names on Aurora 8.4, the TLS procedures before their versions, rds_gtid_purged
-- before 3.04.
-- Messages and refusals follow the RDS/Aurora procedures (SIGNAL SQLSTATE '45000', error 1644).
-- Names starting rds_standin_ are this stand-in's own helpers; Aurora has no such objects.
--
-- Every procedure switches sql_log_bin off for its own writes (history, status, configuration) and
-- puts it back, also when it fails: those rows must never reach a binary log, or they would be
-- replicated to the on-premises server, which has no such tables.  Like Aurora's, the procedures
-- therefore fail with error 1694 when called inside an open transaction: call them with autocommit.

SET SESSION sql_log_bin = 0;

CREATE TABLE IF NOT EXISTS mysql.rds_history (
  action_timestamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  called_by_user   VARCHAR(352) NOT NULL,
  action           VARCHAR(40)  NULL,
  mysql_version    VARCHAR(50)  NOT NULL,
  master_host      VARCHAR(255) NULL,
  master_port      INT          NULL,
  master_user      VARCHAR(96)  NULL,
  master_log_file  VARCHAR(50)  NULL,
  master_log_pos   MEDIUMTEXT   NULL,
  master_ssl       TINYINT(1)   NULL,
  master_delay     INT          NULL,
  auto_position    TINYINT(1)   NULL,
  master_gtid      TEXT         NULL
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS mysql.rds_replication_status (
  action_timestamp       TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  called_by_user         VARCHAR(352) NOT NULL,
  action                 VARCHAR(20)  NOT NULL,
  mysql_version          VARCHAR(50)  NOT NULL,
  master_host            VARCHAR(255) NULL,
  master_port            INT          NULL,
  replication_log_file   TEXT         NULL,
  replication_stop_point BIGINT       NULL,
  replication_gtid       TEXT         NULL,
  channel_name           VARCHAR(64)  NULL DEFAULT ''
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS mysql.rds_configuration (
  action_timestamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  name             VARCHAR(100) NOT NULL PRIMARY KEY,
  value            VARCHAR(100) NULL,
  description      VARCHAR(300) NOT NULL
) ENGINE=InnoDB;

INSERT IGNORE INTO mysql.rds_configuration (name, value, description) VALUES
  ('binlog retention hours', NULL,
   'binlog retention hours specifies the duration in hours before binary logs are automatically deleted.');

-- The installer writes ('aurora_version', '<x.yy.z>'); the runbook library reads it (real Aurora
-- answers @@aurora_version instead).
CREATE TABLE IF NOT EXISTS mysql.rds_sysinfo (
  name  VARCHAR(25) NOT NULL PRIMARY KEY,
  value VARCHAR(50) NULL
) ENGINE=InnoDB;

DELIMITER $$

-- ---------------------------------------------------------------------------------------------
-- Helpers (stand-in only).
-- ---------------------------------------------------------------------------------------------

-- State of the default replication channel: ON (both threads running), OFF (both stopped),
-- BROKEN (one running, or the receiver still connecting), NOT_EXIST (no source configured).
DROP FUNCTION IF EXISTS mysql.rds_standin_channel_state $$
CREATE DEFINER=`rdsadmin`@`localhost` FUNCTION mysql.rds_standin_channel_state()
  RETURNS VARCHAR(10)
  READS SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_state VARCHAR(10);
  SELECT COALESCE(MAX(CASE
           WHEN c.SERVICE_STATE = 'ON'  AND a.SERVICE_STATE = 'ON'  THEN 'ON'
           WHEN c.SERVICE_STATE = 'OFF' AND a.SERVICE_STATE = 'OFF' THEN 'OFF'
           ELSE 'BROKEN' END), 'NOT_EXIST')
    INTO v_state
    FROM performance_schema.replication_connection_status c
    JOIN performance_schema.replication_applier_status a USING (CHANNEL_NAME)
   WHERE c.CHANNEL_NAME = '';
  RETURN v_state;
END $$

-- One row in mysql.rds_history.  The caller has sql_log_bin off; the row is committed at once.
DROP PROCEDURE IF EXISTS mysql.rds_standin_history $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_history(
    IN p_action VARCHAR(40), IN p_host VARCHAR(255), IN p_port INT, IN p_user VARCHAR(96),
    IN p_ssl TINYINT, IN p_auto_position TINYINT, IN p_gtid TEXT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  INSERT INTO mysql.rds_history (called_by_user, action, mysql_version, master_host, master_port,
                                 master_user, master_ssl, auto_position, master_gtid)
  VALUES (USER(), p_action, VERSION(), p_host, p_port, p_user, p_ssl, p_auto_position, p_gtid);
  COMMIT;
END $$

-- The one row of mysql.rds_replication_status for the default channel.
DROP PROCEDURE IF EXISTS mysql.rds_standin_status $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_status(
    IN p_action VARCHAR(20), IN p_host VARCHAR(255), IN p_port INT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DELETE FROM mysql.rds_replication_status WHERE channel_name = '' OR channel_name IS NULL;
  INSERT INTO mysql.rds_replication_status (called_by_user, action, mysql_version, master_host,
                                            master_port, channel_name)
  VALUES (USER(), p_action, VERSION(), p_host, p_port, '');
  COMMIT;
END $$

-- Aurora's replicas ignore its own bookkeeping tables (SHOW REPLICA STATUS shows them in
-- Replicate_Ignore_Table).  Channel filters set by statement do not survive a restart, so this is
-- applied when the source is set and again before every start.  The applier must be stopped.
DROP PROCEDURE IF EXISTS mysql.rds_standin_filter $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_filter()
  SQL SECURITY DEFINER
BEGIN
  CHANGE REPLICATION FILTER REPLICATE_IGNORE_TABLE = (mysql.rds_replication_status, mysql.rds_monitor,
      mysql.rds_sysinfo, mysql.rds_configuration, mysql.rds_history) FOR CHANNEL '';
END $$

-- Wait up to about 5 s for both replication threads to run; give up early when the applier stops.
DROP FUNCTION IF EXISTS mysql.rds_standin_wait_running $$
CREATE DEFINER=`rdsadmin`@`localhost` FUNCTION mysql.rds_standin_wait_running()
  RETURNS VARCHAR(10)
  READS SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_state VARCHAR(10);
  DECLARE v_applier VARCHAR(10);
  DECLARE v_i INT DEFAULT 0;
  REPEAT
    DO SLEEP(0.1);
    SET v_i = v_i + 1;
    SET v_state = mysql.rds_standin_channel_state();
    SELECT MAX(SERVICE_STATE) INTO v_applier
      FROM performance_schema.replication_applier_status WHERE CHANNEL_NAME = '';
  UNTIL v_state = 'ON' OR v_applier = 'OFF' OR v_i >= 50 END REPEAT;
  RETURN v_state;
END $$

-- Shared body of rds_set_external_{master,source}_with_auto_position.
DROP PROCEDURE IF EXISTS mysql.rds_standin_set_source $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_set_source(
    IN host_name VARCHAR(255), IN host_port INT, IN replication_user_name TEXT,
    IN replication_user_password TEXT, IN ssl_encryption TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  -- Aurora ignores ssl_encryption: "This option isn't currently implemented" (AWS, "Configuring,
  -- starting, and stopping binary log (binlog) replication", the Aurora 2 and Aurora 3 entries of
  -- rds_set_external_{master,source}_with_auto_position).  The channel is set without TLS; on
  -- Aurora 3.06+ mysql.rds_set_binlog_source_ssl(1) turns SOURCE_SSL on afterwards.
  DECLARE v_ssl TINYINT DEFAULT 0;
  DECLARE v_state VARCHAR(10);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: set master AP', TRIM(host_name), host_port,
                                 TRIM(replication_user_name), v_ssl, 1, NULL);
  SET v_state = mysql.rds_standin_channel_state();
  IF v_state IN ('ON', 'BROKEN') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t modify replication because replication is running. First call mysql.rds_stop_replication.';
  END IF;
  IF host_name IS NULL OR TRIM(host_name) = '' OR host_port IS NULL OR replication_user_name IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'host_name, host_port and replication_user_name must be given.';
  END IF;
  SET @rds_standin_cmd = CONCAT(
      'CHANGE REPLICATION SOURCE TO SOURCE_HOST = ', QUOTE(TRIM(host_name)),
      ', SOURCE_PORT = ', host_port,
      ', SOURCE_USER = ', QUOTE(TRIM(replication_user_name)),
      ', SOURCE_PASSWORD = ', QUOTE(COALESCE(replication_user_password, '')),
      ', SOURCE_SSL = 0',
      ', SOURCE_AUTO_POSITION = 1',
      ', SOURCE_CONNECT_RETRY = 60, SOURCE_RETRY_COUNT = 86400',
      ' FOR CHANNEL ''''');
  PREPARE rds_standin_stmt FROM @rds_standin_cmd;
  SET @rds_standin_cmd = NULL;            -- holds the password: do not leave it in the session
  EXECUTE rds_standin_stmt;
  DEALLOCATE PREPARE rds_standin_stmt;
  CALL mysql.rds_standin_filter();
  CALL mysql.rds_standin_status('set master', TRIM(host_name), host_port);
  CALL mysql.rds_standin_history('set master', TRIM(host_name), host_port,
                                 TRIM(replication_user_name), v_ssl, 1, NULL);
  SET @@session.sql_log_bin = v_log_bin;
END $$

-- Shared body of rds_reset_external_{master,source}.
DROP PROCEDURE IF EXISTS mysql.rds_standin_reset_source $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_reset_source()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_state VARCHAR(10);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: reset slave', NULL, NULL, NULL, NULL, NULL, NULL);
  SET v_state = mysql.rds_standin_channel_state();
  IF v_state = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t reset replication because replication isn''t configured. First run mysql.rds_set_external_master.';
  END IF;
  IF v_state <> 'OFF' THEN
    STOP REPLICA FOR CHANNEL '';
  END IF;
  RESET REPLICA ALL FOR CHANNEL '';
  CALL mysql.rds_standin_status('reset slave', NULL, NULL);
  CALL mysql.rds_standin_history('reset slave', NULL, NULL, NULL, NULL, NULL, NULL);
  SET @@session.sql_log_bin = v_log_bin;
  SELECT 'Slave has been reset' AS message;
END $$

-- Shared body of rds_set_{master,source}_auto_position.
DROP PROCEDURE IF EXISTS mysql.rds_standin_auto_position $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_auto_position(IN auto_position_mode TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_mode TINYINT DEFAULT IF(COALESCE(auto_position_mode, 0) <> 0, 1, 0);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: set_master_AP', NULL, NULL, NULL, NULL, v_mode, NULL);
  IF mysql.rds_standin_channel_state() = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t modify auto_position mode because the replica isn''t configured. First call mysql.rds_set_external_master.';
  END IF;
  STOP REPLICA FOR CHANNEL '';
  SET @rds_standin_cmd = CONCAT('CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION = ', v_mode,
                                ' FOR CHANNEL ''''');
  PREPARE rds_standin_stmt FROM @rds_standin_cmd;
  EXECUTE rds_standin_stmt;
  DEALLOCATE PREPARE rds_standin_stmt;
  CALL mysql.rds_standin_filter();
  START REPLICA FOR CHANNEL '';
  SELECT CONCAT('Master Auto Position has been set to ', v_mode, '.') AS Message;
  IF mysql.rds_standin_wait_running() = 'ON' THEN
    CALL mysql.rds_standin_history('set_master_AP:OK', NULL, NULL, NULL, NULL, v_mode, NULL);
    SET @@session.sql_log_bin = v_log_bin;
    SELECT 'Slave is running normally' AS Message;
  ELSE
    CALL mysql.rds_standin_history('set_master_AP:ERR', NULL, NULL, NULL, NULL, v_mode, NULL);
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Slave has encountered a new error. Please use SHOW SLAVE STATUS to see the error.';
  END IF;
END $$

-- ---------------------------------------------------------------------------------------------
-- Aurora's procedures.
-- ---------------------------------------------------------------------------------------------

DROP PROCEDURE IF EXISTS mysql.rds_set_external_master_with_auto_position $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_external_master_with_auto_position(
    IN host_name VARCHAR(255), IN host_port INT, IN replication_user_name TEXT,
    IN replication_user_password TEXT, IN ssl_encryption TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_set_source(host_name, host_port, replication_user_name,
                                    replication_user_password, ssl_encryption);
END $$

DROP PROCEDURE IF EXISTS mysql.rds_set_external_source_with_auto_position $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_external_source_with_auto_position(
    IN host_name VARCHAR(255), IN host_port INT, IN replication_user_name TEXT,
    IN replication_user_password TEXT, IN ssl_encryption TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_set_source(host_name, host_port, replication_user_name,
                                    replication_user_password, ssl_encryption);
END $$

DROP PROCEDURE IF EXISTS mysql.rds_reset_external_master $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_reset_external_master()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_reset_source();
END $$

DROP PROCEDURE IF EXISTS mysql.rds_reset_external_source $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_reset_external_source()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_reset_source();
END $$

DROP PROCEDURE IF EXISTS mysql.rds_set_master_auto_position $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_master_auto_position(IN auto_position_mode TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_auto_position(auto_position_mode);
END $$

DROP PROCEDURE IF EXISTS mysql.rds_set_source_auto_position $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_source_auto_position(IN auto_position_mode TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  CALL mysql.rds_standin_auto_position(auto_position_mode);
END $$

DROP PROCEDURE IF EXISTS mysql.rds_start_replication $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_start_replication()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_state VARCHAR(10);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: start slave', NULL, NULL, NULL, NULL, NULL, NULL);
  SET v_state = mysql.rds_standin_channel_state();
  IF v_state = 'ON' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Replication may already be running. Call rds_stop_replication to stop replication';
  ELSEIF v_state = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t start replication because the replica isn''t configured. First call mysql.rds_set_external_master.';
  ELSEIF v_state = 'BROKEN' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Replication might be running. First call mysql.rds_stop_replication.';
  END IF;
  CALL mysql.rds_standin_filter();
  START REPLICA FOR CHANNEL '';
  CALL mysql.rds_standin_status('start slave', NULL, NULL);
  IF mysql.rds_standin_wait_running() = 'ON' THEN
    CALL mysql.rds_standin_history('start slave', NULL, NULL, NULL, NULL, NULL, NULL);
    SET @@session.sql_log_bin = v_log_bin;
    SELECT 'Replication started. Slave is now running normally.' AS Message;
  ELSE
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Slave has encountered an error. Run SHOW SLAVE STATUS\\G; to see the error.';
  END IF;
END $$

DROP PROCEDURE IF EXISTS mysql.rds_stop_replication $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_stop_replication()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_state VARCHAR(10);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: stop slave', NULL, NULL, NULL, NULL, NULL, NULL);
  SET v_state = mysql.rds_standin_channel_state();
  IF v_state = 'OFF' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Slave is already stopped or may not be configured. Run SHOW SLAVE STATUS\\G;';
  ELSEIF v_state = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t stop replication because the replica isn''t configured. First call mysql.rds_set_external_master.';
  END IF;
  STOP REPLICA FOR CHANNEL '';
  CALL mysql.rds_standin_status('stop slave', NULL, NULL);
  IF mysql.rds_standin_channel_state() = 'OFF' THEN
    CALL mysql.rds_standin_history('stop slave', NULL, NULL, NULL, NULL, NULL, NULL);
    SET @@session.sql_log_bin = v_log_bin;
    SELECT 'Slave is now down or disabled' AS Message;
  ELSE
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Slave has encountered an error. Run SHOW SLAVE STATUS\\G; to see the error.';
  END IF;
END $$

-- With gtid_mode=ON, Aurora 3 (MySQL 8.0.23 inside) refuses the skip counter with error 1858 and
-- the DBA uses rds_skip_transaction_with_gtid.  MySQL 9.7 accepts the counter but does not skip a
-- GTID transaction with it (tried), so the stand-in raises Aurora's error itself.
DROP PROCEDURE IF EXISTS mysql.rds_skip_repl_error $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_skip_repl_error()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_state VARCHAR(10);
  DECLARE v_errno INT;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history('Starting: skip_repl_error', NULL, NULL, NULL, NULL, NULL, NULL);
  SET v_state = mysql.rds_standin_channel_state();
  SELECT MAX(LAST_ERROR_NUMBER) INTO v_errno
    FROM performance_schema.replication_applier_status_by_worker WHERE CHANNEL_NAME = '';
  IF v_state = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t skip a replication error because the replica isn''t configured. First call mysql.rds_set_external_master.';
  ELSEIF v_state = 'ON' AND COALESCE(v_errno, 0) = 0 THEN
    -- (a worker's error is recorded a moment before the applier's state leaves ON: that is not "normal")
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'Slave is running normally.  No errors detected to skip.';
  ELSEIF v_state = 'OFF' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'Slave is down or disabled.';
  END IF;
  IF COALESCE(v_errno, 0) <> 0 AND @@global.gtid_mode = 'ON' THEN
    SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1858, MESSAGE_TEXT =
      'sql_replica_skip_counter can not be set when the server is running with @@GLOBAL.GTID_MODE = ON.';
  END IF;
  IF COALESCE(v_errno, 0) = 0 THEN
    SET @@session.sql_log_bin = v_log_bin;
    SELECT 'The replica SQL thread is running for the specified channel without encountering errors. Run SHOW REPLICA STATUS FOR CHANNEL '''';' AS Message;
  ELSE
    SET GLOBAL sql_replica_skip_counter = 1;
    STOP REPLICA FOR CHANNEL '';
    START REPLICA FOR CHANNEL '';
    SELECT 'Statement in error has been skipped' AS Message;
    IF mysql.rds_standin_wait_running() = 'ON' THEN
      CALL mysql.rds_standin_history('skip_repl_error:OK', NULL, NULL, NULL, NULL, NULL, NULL);
      SET @@session.sql_log_bin = v_log_bin;
      SELECT 'Slave is now running normally' AS Message;
    ELSE
      CALL mysql.rds_standin_history('skip_repl_error:ERR', NULL, NULL, NULL, NULL, NULL, NULL);
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
        'Slave has encountered a new error. Please use SHOW SLAVE STATUS to see the error.';
    END IF;
  END IF;
END $$

-- As on Aurora/RDS: commit an empty transaction under SET GTID_NEXT = gtid_to_skip, with binary
-- logging off.  MySQL 9.7 accepts SET gtid_next directly in a stored procedure (tried; only the
-- PREPARE route fails, because after that COMMIT nothing but SET gtid_next may run).  The applier
-- then finds the GTID executed and skips exactly that transaction.  It does not restart
-- replication: the DBA stops and starts it with the procedures, as on Aurora.
DROP PROCEDURE IF EXISTS mysql.rds_skip_transaction_with_gtid $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_skip_transaction_with_gtid(IN gtid_to_skip TEXT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.gtid_next = 'AUTOMATIC';
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  SET @@session.gtid_next = TRIM(gtid_to_skip);
  START TRANSACTION;
  COMMIT;
  SET @@session.gtid_next = 'AUTOMATIC';
  CALL mysql.rds_standin_history('rds_skip_transaction_with_gtid:OK', NULL, NULL, NULL, NULL, NULL,
                                 TRIM(gtid_to_skip));
  SET @@session.sql_log_bin = v_log_bin;
  SELECT 'Transaction has been skipped successfully.' AS Message;
END $$

-- Aurora keeps binary logs for `binlog retention hours` (1..2160 on Aurora 2.11+ and 3; NULL means
-- "purged lazily, usually within a day").  The stand-in also makes it its binary log expiry:
-- binlog_expire_logs_seconds = hours * 3600, or one day for NULL, persisted across restarts.
DROP PROCEDURE IF EXISTS mysql.rds_set_configuration $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_configuration(IN name VARCHAR(30), IN value INT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  CALL mysql.rds_standin_history(LEFT(CONCAT('set_configuration: ', name), 40), NULL, NULL, NULL, NULL,
                                 NULL, NULL);
  IF name = 'binlog retention hours' AND value NOT BETWEEN 1 AND 2160 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'For binlog retention hours the value must be between 1 and 2160 inclusive or be NULL';
  END IF;
  UPDATE mysql.rds_configuration SET mysql.rds_configuration.value = value
   WHERE BINARY mysql.rds_configuration.name = BINARY name;
  COMMIT;
  IF name = 'binlog retention hours' THEN
    CALL mysql.rds_standin_apply_retention();
  END IF;
  SET @@session.sql_log_bin = v_log_bin;
END $$

-- Makes the stored retention the server's binary log expiry (also run by the installer).
DROP PROCEDURE IF EXISTS mysql.rds_standin_apply_retention $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_standin_apply_retention()
  READS SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_hours INT;
  SELECT CAST(value AS UNSIGNED) INTO v_hours FROM mysql.rds_configuration
   WHERE name = 'binlog retention hours';
  SET PERSIST binlog_expire_logs_seconds = COALESCE(v_hours, 24) * 3600;
END $$

DROP PROCEDURE IF EXISTS mysql.rds_show_configuration $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_show_configuration()
  READS SQL DATA
  SQL SECURITY DEFINER
BEGIN
  SELECT name, value, description FROM mysql.rds_configuration;
END $$

-- mysql.rds_set_binlog_source_ssl(mode): "Enables SOURCE_SSL encryption for binlog replication"; mode
-- 0 (the default) disables it, 1 enables it; "supported for Aurora MySQL version 3.06 and higher"
-- (AWS, "Configuring, starting, and stopping binary log (binlog) replication").  The installer drops
-- it for Aurora 2 and Aurora 3 before 3.06.  SOURCE_SSL_VERIFY_SERVER_CERT stays 0, as on Aurora
-- ("the connection is encrypted, but the certificates aren't verified").  Like CHANGE REPLICATION
-- SOURCE TO SOURCE_SSL, it needs the receiver stopped: the server's own error says so otherwise.
DROP PROCEDURE IF EXISTS mysql.rds_set_binlog_source_ssl $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_set_binlog_source_ssl(IN mode TINYINT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE v_mode TINYINT DEFAULT IF(COALESCE(mode, 0) <> 0, 1, 0);
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  IF mysql.rds_standin_channel_state() = 'NOT_EXIST' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'You can''t set binlog source SSL because replication isn''t configured. First call mysql.rds_set_external_source.';
  END IF;
  SET @rds_standin_cmd = CONCAT('CHANGE REPLICATION SOURCE TO SOURCE_SSL = ', v_mode,
                                ', SOURCE_SSL_VERIFY_SERVER_CERT = 0 FOR CHANNEL ''''');
  PREPARE rds_standin_stmt FROM @rds_standin_cmd;
  EXECUTE rds_standin_stmt;
  DEALLOCATE PREPARE rds_standin_stmt;
  CALL mysql.rds_standin_history('set binlog source ssl', NULL, NULL, NULL, v_mode, NULL, NULL);
  SET @@session.sql_log_bin = v_log_bin;
  SELECT CONCAT('Binlog source SSL has been set to ', v_mode, '.') AS Message;
END $$


-- mysql.rds_import_binlog_ssl_material(ssl_material): "Imports the certificate authority certificate,
-- client certificate, and client key into an Aurora MySQL DB cluster", a JSON payload with "ssl_ca",
-- "ssl_cert" and "ssl_key" (.pem contents); mysql.rds_remove_binlog_ssl_material removes them (AWS,
-- "Configuring, starting, and stopping binary log (binlog) replication").  Supported for Aurora 2.09.2,
-- 2.10.0, 2.10.1, 2.11.0 and Aurora 3.01.1 and higher: the installer drops both elsewhere.  The
-- stand-in checks the payload and keeps only SHA-256 digests of it (a lab table must not hold a private
-- key); none of its procedures uses the material: the runbook's channel is GTID auto-position, whose
-- procedure ignores ssl_encryption, so its TLS comes from rds_set_binlog_source_ssl alone.
CREATE TABLE IF NOT EXISTS mysql.rds_standin_ssl_material (
  id          TINYINT NOT NULL PRIMARY KEY,
  imported_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  ca_sha256   CHAR(64) NOT NULL,
  cert_sha256 CHAR(64) NOT NULL,
  key_sha256  CHAR(64) NOT NULL
) ENGINE=InnoDB $$

DROP PROCEDURE IF EXISTS mysql.rds_import_binlog_ssl_material $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_import_binlog_ssl_material(IN ssl_material MEDIUMTEXT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  IF ssl_material IS NULL OR NOT JSON_VALID(ssl_material)
     OR IFNULL(JSON_TYPE(JSON_EXTRACT(ssl_material, '$.ssl_ca')), '') <> 'STRING'
     OR IFNULL(JSON_TYPE(JSON_EXTRACT(ssl_material, '$.ssl_cert')), '') <> 'STRING'
     OR IFNULL(JSON_TYPE(JSON_EXTRACT(ssl_material, '$.ssl_key')), '') <> 'STRING'
     OR JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_ca')) NOT LIKE '-----BEGIN %'
     OR JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_cert')) NOT LIKE '-----BEGIN %'
     OR JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_key')) NOT LIKE '-----BEGIN %' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
      'Invalid SSL material: expected a JSON payload with ssl_ca, ssl_cert and ssl_key in .pem format.';
  END IF;
  REPLACE INTO mysql.rds_standin_ssl_material (id, ca_sha256, cert_sha256, key_sha256)
  VALUES (1, SHA2(JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_ca')), 256),
          SHA2(JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_cert')), 256),
          SHA2(JSON_UNQUOTE(JSON_EXTRACT(ssl_material, '$.ssl_key')), 256));
  COMMIT;
  CALL mysql.rds_standin_history('import binlog ssl material', NULL, NULL, NULL, 1, NULL, NULL);
  SET @@session.sql_log_bin = v_log_bin;
  SELECT 'SSL material has been imported.' AS Message;
END $$

DROP PROCEDURE IF EXISTS mysql.rds_remove_binlog_ssl_material $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_remove_binlog_ssl_material()
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  DELETE FROM mysql.rds_standin_ssl_material;
  COMMIT;
  CALL mysql.rds_standin_history('remove binlog ssl material', NULL, NULL, NULL, 0, NULL, NULL);
  SET @@session.sql_log_bin = v_log_bin;
  SELECT 'SSL material has been removed.' AS Message;
END $$


-- Aurora 3.04+ (AWS "Replicating transactions using GTIDs", mysql.rds_gtid_purged): sets the global
-- gtid_purged, as MySQL's SET GLOBAL gtid_purged does: 'set' replaces it (the new set must contain the
-- old one), '+set' appends to it; either way the set must not overlap the GTIDs executed and not
-- purged, nor GTIDs that running transactions own.  MySQL itself refuses those (errors 1840, 3546...)
-- and the refusal reaches the caller unchanged.  The installer drops this procedure when it emulates
-- Aurora 2 or Aurora 3 before 3.04.
DROP PROCEDURE IF EXISTS mysql.rds_gtid_purged $$
CREATE DEFINER=`rdsadmin`@`localhost` PROCEDURE mysql.rds_gtid_purged(IN gtid_set TEXT)
  MODIFIES SQL DATA
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_log_bin BOOLEAN;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    ROLLBACK;
    SET @@session.sql_log_bin = v_log_bin;
    RESIGNAL;
  END;
  SELECT @@session.sql_log_bin INTO v_log_bin;
  SET @@session.sql_log_bin = OFF;
  IF gtid_set IS NULL OR TRIM(gtid_set) IN ('', '+') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'gtid_set must be a GTID set, or + and a GTID set to append.';
  END IF;
  CALL mysql.rds_standin_history('rds_gtid_purged', NULL, NULL, NULL, NULL, NULL, TRIM(gtid_set));
  SET @@GLOBAL.gtid_purged = TRIM(gtid_set);
  SET @@session.sql_log_bin = v_log_bin;
  SELECT CONCAT('gtid_purged is now ', @@GLOBAL.gtid_purged) AS Message;
END $$


DELIMITER ;

use figment::Jail;

use super::*;

fn load() -> Result<Config, Error> {
    Config::from_figment(&Config::figment(None))
}

#[test]
fn layers_in_order() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            DEFAULT_FILE,
            "[network]\ncluster = 16\nnum_shards = 4\nidle_timeout_secs = 9\n",
        )?;
        jail.set_env("MURMUR_NETWORK__CLUSTER", "17");
        let figment = Config::figment(None).merge(Serialized::default("network.num_shards", 2));
        let config = Config::from_figment(&figment).unwrap();
        assert_eq!(config.network.cluster, 17, "env beats the file");
        assert_eq!(config.network.num_shards, 2, "flags beat everything");
        assert_eq!(config.network.idle_timeout_secs, 9, "file beats defaults");
        assert_eq!(config.shards(), vec![0, 1]);
        Ok(())
    });
}

#[test]
fn a_bad_value_names_its_key_and_source() {
    Jail::expect_with(|jail| {
        jail.set_env("MURMUR_NETWORK__CLUSTER", "lots");
        let err = load().unwrap_err().to_string();
        assert!(err.contains("network.cluster"), "{err}");
        assert!(err.contains("MURMUR_"), "{err}");
        assert!(!err.contains('\n'));
        Ok(())
    });
}

#[test]
fn the_shipped_default_file_is_the_built_in_defaults() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            DEFAULT_FILE,
            include_str!("../../../../config/default.toml"),
        )?;
        assert_eq!(load().unwrap(), Config::default());
        Ok(())
    });
}

#[test]
fn a_typo_is_an_error() {
    Jail::expect_with(|jail| {
        jail.create_file("my.toml", "[network]\nclustre = 3\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("my.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clustre"), "{err}");
        assert!(err.contains("my.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn a_bad_multiaddr_and_a_bad_range_are_errors() {
    Jail::expect_with(|jail| {
        jail.create_file("a.toml", "[network]\npeers = [\"/ip4/1.2.3/tcp/1\"]\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("a.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("network.peers"), "{err}");

        jail.create_file("b.toml", "[network]\nnum_shards = 0\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("b.toml"))))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("network.num_shards") && err.contains("b.toml"),
            "{err}"
        );

        jail.create_file("c.toml", "[network]\npeers = [\"/ip4/127.0.0.1/tcp/1\"]\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("c.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/p2p/<peer id>"), "{err}");

        jail.create_file("d.toml", "[chat]\nmax_skip = 4000000000\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("d.toml"))))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat.max_skip") && err.contains("over"),
            "{err}"
        );

        jail.create_file("d2.toml", "[chat]\nenvelope_threads = 1000\n")?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("d2.toml"))))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat.envelope_threads") && err.contains("over"),
            "{err}"
        );
        jail.create_file("d3.toml", "[chat]\nenvelope_threads = 0\n")?;
        let config = Config::from_figment(&Config::figment(Some(Path::new("d3.toml"))))
            .expect("0 keeps the agreements on the stage's thread");
        assert_eq!(config.chat.sessions().threads, 0);

        for (file, batch, says) in [("d4.toml", 1000, "over"), ("d5.toml", 0, "at least 1")] {
            jail.create_file(file, &format!("[chat]\nbatch = {batch}\n"))?;
            let err = Config::from_figment(&Config::figment(Some(Path::new(file))))
                .unwrap_err()
                .to_string();
            assert!(err.contains("chat.batch") && err.contains(says), "{err}");
        }

        jail.create_file(
            "e.toml",
            "[network]\ncluster = 16\nshards = [32]\ntopic_shards = [64]\n",
        )?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("e.toml"))))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("network.topic_shards") && err.contains("shard 64"),
            "{err}"
        );

        jail.set_env("MURMUR_NETWORK__TIMER_THREAD_NICE", "20");
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("network.timer_thread_nice") && err.contains("between 0 and 19"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn plugins_read_their_own_section() {
    #[derive(Deserialize)]
    struct Moderation {
        max_per_minute: u32,
    }
    Jail::expect_with(|jail| {
        jail.create_file("p.toml", "[plugins.moderation]\nmax_per_minute = 5\n")?;
        let config = Config::from_figment(&Config::figment(Some(Path::new("p.toml")))).unwrap();
        let m: Moderation = config.plugin("moderation").unwrap();
        assert_eq!(m.max_per_minute, 5);
        Ok(())
    });
}

#[test]
fn the_rest_section_is_checked_and_its_token_never_shown() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "r.toml",
            "[rest]\nenabled = true\nrelay_cache_capacity = 0\n",
        )?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("r.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rest.relay_cache_capacity"), "{err}");

        jail.set_env("MURMUR_REST__TOKEN", "short");
        let err = load().unwrap_err().to_string();
        assert!(err.contains("rest.token") && err.contains("16"), "{err}");
        assert!(!err.contains("short"), "{err}");

        jail.set_env("MURMUR_REST__TOKEN", "a-long-enough-secret");
        jail.set_env("MURMUR_REST__ALLOW_ORIGIN", "[\"localhost:*\"]");
        let config = load().unwrap();
        let token = config
            .rest
            .token
            .as_ref()
            .expect("read from the environment");
        assert_eq!(token.expose(), "a-long-enough-secret");
        assert_eq!(config.rest.allow_origin, ["localhost:*"]);
        assert!(!format!("{config:?}").contains("a-long-enough-secret"));
        assert_eq!(config.rest.socket_addr().to_string(), "127.0.0.1:8645");
        Ok(())
    });
}

#[test]
fn a_webhook_needs_an_http_url_and_a_secret() {
    Jail::expect_with(|jail| {
        jail.set_env("MURMUR_WEBHOOK__URL", "ftp://bot");
        let err = load().unwrap_err().to_string();
        assert!(err.contains("webhook.url"), "{err}");
        jail.set_env("MURMUR_WEBHOOK__URL", "http://127.0.0.1:8700/");
        let err = load().unwrap_err().to_string();
        assert!(err.contains("webhook.secret"), "{err}");
        jail.set_env("MURMUR_WEBHOOK__SECRET", "sixteen-chars-or-more");
        let config = load().unwrap();
        assert_eq!(
            config.webhook.url.as_deref(),
            Some("http://127.0.0.1:8700/")
        );
        assert!(!format!("{config:?}").contains("sixteen-chars-or-more"));
        Ok(())
    });
}

#[test]
fn a_discv5_bootstrap_record_must_be_an_enr() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "d.toml",
            "[network]\ndiscv5 = true\ndiscv5_bootstrap_nodes = [\"enode://abc@1.2.3.4:30303\"]\n",
        )?;
        let err = Config::from_figment(&Config::figment(Some(Path::new("d.toml"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("network.discv5_bootstrap_nodes"), "{err}");
        Ok(())
    });
}

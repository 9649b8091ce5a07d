package io.flinkpki.interop;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.GlobalConfiguration;

/**
 * ConfigValue prints the string this Flink version hands an option for KEY
 * of the configuration directory CONF_DIR, loaded the way Flink's
 * entrypoints load it (Configuration.toMap), or "unset". flinkpki's lint
 * reads config.yaml values the same way (a YAML list, for one, as its flow
 * text); the interop suite compares the two.
 *
 * <p>Usage: ConfigValue CONF_DIR KEY.
 */
public final class ConfigValue {
    private ConfigValue() {}

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: ConfigValue CONF_DIR KEY");
            System.exit(2);
        }
        Configuration conf = GlobalConfiguration.loadConfiguration(args[0]);
        String v = conf.toMap().get(args[1]);
        System.out.println(v == null ? "unset" : "value=" + v);
    }
}

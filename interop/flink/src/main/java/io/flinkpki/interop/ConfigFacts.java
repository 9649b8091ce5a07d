package io.flinkpki.interop;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.SecurityOptions;

/**
 * ConfigFacts prints how this Flink version reads the SSL switches of the
 * configuration directory CONF_DIR, loaded the way Flink's entrypoints load
 * it: "internal=BOOL rest=BOOL bind=ADDRESS" from SecurityOptions and
 * RestOptions.BIND_ADDRESS (with its fallback keys; "unset" when none is
 * set), or "unread: MESSAGE"
 * when this version does not load the directory's file at all. flinkpki's
 * lint models these facts (which keys turn SSL on, which files are read);
 * the interop suite compares the two.
 *
 * <p>Usage: ConfigFacts CONF_DIR.
 */
public final class ConfigFacts {
    private ConfigFacts() {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: ConfigFacts CONF_DIR");
            System.exit(2);
        }
        Configuration conf;
        try {
            conf = GlobalConfiguration.loadConfiguration(args[0]);
        } catch (RuntimeException e) {
            System.out.println("unread: " + e.getMessage());
            return;
        }
        String bind = conf.get(RestOptions.BIND_ADDRESS);
        System.out.println(
                "internal=" + SecurityOptions.isInternalSSLEnabled(conf)
                        + " rest=" + SecurityOptions.isRestSSLEnabled(conf)
                        + " bind=" + (bind == null ? "unset" : bind));
    }
}

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * Loads the stores of flinkpki credential directories the way Flink's
 * SSLUtils does and runs a mutual-TLS handshake between two of them.
 *
 * Usage: java FlinkSSLHarness PAIRS_FILE, where each line of PAIRS_FILE is
 * "SERVER_FLINK_SSL_YAML<TAB>CLIENT_FLINK_SSL_YAML". Prints one line per pair:
 * "OK" or "FAIL reason".
 */
public final class FlinkSSLHarness {
    private static final int TIMEOUT_MS = 10_000;

    public static void main(String[] args) throws Exception {
        List<String> lines = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
        for (String line : lines) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] pair = line.split("\t");
            String result;
            try {
                result = handshake(readConf(pair[0]), readConf(pair[1]));
            } catch (Throwable e) {
                result = "FAIL setup: " + describe(e);
            }
            System.out.println(result);
            System.out.flush();
        }
    }

    /** Reads a flat "key: value" file such as flink-ssl.yaml. */
    static Map<String, String> readConf(String path) throws Exception {
        Map<String, String> conf = new HashMap<>();
        try (BufferedReader r = Files.newBufferedReader(Paths.get(path), StandardCharsets.UTF_8)) {
            String line;
            while ((line = r.readLine()) != null) {
                line = line.trim();
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                int i = line.indexOf(": ");
                if (i < 0) {
                    throw new IllegalArgumentException(path + ": not a key: value line: " + line);
                }
                conf.put(line.substring(0, i).trim(), line.substring(i + 2).trim());
            }
        }
        return conf;
    }

    static String require(Map<String, String> conf, String key) {
        String v = conf.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing " + key);
        }
        return v;
    }

    /**
     * Mirrors Flink's SSLUtils.createInternalSSLContext (the stores) and its
     * RPC's Pekko ConfigSSLEngineProvider, which asks the JDK for an
     * SSLContext named by the security.ssl.protocol value as one name.
     */
    static SSLContext context(Map<String, String> conf) throws Exception {
        String ksType = conf.getOrDefault("security.ssl.internal.keystore-type", KeyStore.getDefaultType());
        KeyStore ks = KeyStore.getInstance(ksType);
        try (InputStream in = new FileInputStream(require(conf, "security.ssl.internal.keystore"))) {
            ks.load(in, require(conf, "security.ssl.internal.keystore-password").toCharArray());
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
        kmf.init(ks, require(conf, "security.ssl.internal.key-password").toCharArray());

        String tsType = conf.getOrDefault("security.ssl.internal.truststore-type", KeyStore.getDefaultType());
        KeyStore ts = KeyStore.getInstance(tsType);
        try (InputStream in = new FileInputStream(require(conf, "security.ssl.internal.truststore"))) {
            ts.load(in, require(conf, "security.ssl.internal.truststore-password").toCharArray());
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ts);

        SSLContext ctx = SSLContext.getInstance(conf.getOrDefault("security.ssl.protocol", "TLSv1.2"));
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    /** As SSLUtils.getEnabledProtocols: split at commas, nothing trimmed. */
    static String[] protocols(Map<String, String> conf) {
        return conf.getOrDefault("security.ssl.protocol", "TLSv1.2").split(",");
    }

    static String[] suites(Map<String, String> conf) {
        return conf.getOrDefault("security.ssl.algorithms", "TLS_RSA_WITH_AES_128_CBC_SHA").split(",");
    }

    static String handshake(Map<String, String> serverConf, Map<String, String> clientConf) throws Exception {
        SSLContext serverCtx = context(serverConf);
        SSLContext clientCtx = context(clientConf);
        AtomicReference<Throwable> serverErr = new AtomicReference<>();
        try (SSLServerSocket server = (SSLServerSocket) serverCtx.getServerSocketFactory()
                .createServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setNeedClientAuth(true);
            server.setEnabledProtocols(protocols(serverConf));
            server.setEnabledCipherSuites(suites(serverConf));
            server.setSoTimeout(TIMEOUT_MS);
            Thread t = new Thread(() -> {
                try (SSLSocket s = (SSLSocket) server.accept()) {
                    s.setSoTimeout(TIMEOUT_MS);
                    s.startHandshake();
                    InputStream in = s.getInputStream();
                    int b = in.read();
                    if (b != 42) {
                        throw new IllegalStateException("server read " + b + ", want 42");
                    }
                    OutputStream out = s.getOutputStream();
                    out.write(43);
                    out.flush();
                } catch (Throwable e) {
                    serverErr.set(e);
                }
            });
            t.start();
            Throwable clientErr = null;
            try (SSLSocket c = (SSLSocket) clientCtx.getSocketFactory().createSocket()) {
                c.setEnabledProtocols(protocols(clientConf));
                c.setEnabledCipherSuites(suites(clientConf));
                c.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), server.getLocalPort()), TIMEOUT_MS);
                c.setSoTimeout(TIMEOUT_MS);
                c.startHandshake();
                OutputStream out = c.getOutputStream();
                out.write(42);
                out.flush();
                int b = c.getInputStream().read();
                if (b != 43) {
                    throw new IllegalStateException("client read " + b + ", want 43");
                }
            } catch (Throwable e) {
                clientErr = e;
            }
            t.join(2L * TIMEOUT_MS);
            if (t.isAlive()) {
                return "FAIL server thread did not finish";
            }
            if (serverErr.get() == null && clientErr == null) {
                return "OK";
            }
            StringBuilder sb = new StringBuilder("FAIL");
            if (serverErr.get() != null) {
                sb.append(" server: ").append(describe(serverErr.get()));
            }
            if (clientErr != null) {
                sb.append(serverErr.get() != null ? ";" : "").append(" client: ").append(describe(clientErr));
            }
            return sb.toString();
        }
    }

    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (sb.length() > 0) {
                sb.append(" <- ");
            }
            sb.append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
            if (c.getCause() == c) {
                break;
            }
        }
        return sb.toString().replace('\n', ' ').replace('\r', ' ');
    }
}

package io.flinkpki.interop;

import java.io.File;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * SubmitJob submits a small bounded streaming job through Flink's own REST
 * client and waits for it to finish. The keyBy makes every record cross the
 * TaskManager data plane, so with parallelism equal to the slots of several
 * TaskManagers the shuffle runs over their internal TLS links.
 *
 * <p>Usage: SubmitJob CONF_DIR HOST REST_PORT PARALLELISM RECORDS JAR. The
 * client configuration (REST TLS keys, if any) is read from CONF_DIR, the
 * same way Flink's CLI reads FLINK_CONF_DIR. It exits 0 only when the job
 * reached FINISHED.
 */
public final class SubmitJob {
    private SubmitJob() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: SubmitJob CONF_DIR HOST REST_PORT PARALLELISM RECORDS JAR");
            System.exit(2);
        }
        Configuration conf = GlobalConfiguration.loadConfiguration(args[0]);
        String host = args[1];
        int port = Integer.parseInt(args[2]);
        int parallelism = Integer.parseInt(args[3]);
        long records = Long.parseLong(args[4]);
        String jar = new File(args[5]).getAbsolutePath();

        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.createRemoteEnvironment(host, port, conf, jar);
        env.setParallelism(parallelism);
        env.fromSequence(1, records)
                .keyBy(new Bucket())
                .map(new Square())
                .sinkTo(new DiscardingSink<>());
        long start = System.nanoTime();
        JobExecutionResult result = env.execute("flinkpki-interop-shuffle");
        long millis = (System.nanoTime() - start) / 1_000_000;
        System.out.println("FINISHED job " + result.getJobID() + " parallelism " + parallelism
                + " records " + records + " in " + millis + "ms");
    }

    /** Bucket spreads the sequence over many keys so every subtask receives records. */
    public static final class Bucket implements KeySelector<Long, Long> {
        @Override
        public Long getKey(Long value) {
            return value % 64;
        }
    }

    /** Square is the per-record work after the shuffle. */
    public static final class Square implements MapFunction<Long, Long> {
        @Override
        public Long map(Long value) {
            return value * value;
        }
    }
}

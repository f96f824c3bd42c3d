using RetriBooru.Cli;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

public class CliDoctorTests
{
    [Fact]
    public void Doctor_prints_versions_device_and_gflops()
    {
        var console = new TestConsole().Width(200);
        int code = CliApp.Run(["doctor", "--size", "256"], console);
        Assert.Equal(0, code);
        var output = console.Output;
        foreach (var expected in new[] { "TorchSharp", "0.107.0", "libtorch", "2.10.0", "device", "cpu", "threads", "libstdc++ fix", "GFLOP/s", "oneDNN kernels", "on (the default", "convolution backward check" })
            Assert.Contains(expected, output);
    }

    [Fact]
    public void Unknown_verb_is_a_usage_error()
    {
        var console = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["no-such-verb"], console));
    }

    [Fact]
    public void An_error_shows_the_message_that_names_the_file_not_the_parser_message_inside_it()
    {
        using var dir = new TempDir();
        var stats = Path.Combine(dir.Path, "manifests", "stats.json");
        Directory.CreateDirectory(Path.GetDirectoryName(stats)!);
        File.WriteAllText(stats, "{ \"images\": ");
        var console = new TestConsole().Width(400);
        Assert.Equal(1, CliApp.Run(["dataset", "stats", dir.Path], console));
        Assert.Contains($"error: {stats}: bad stats file:", console.Output);

        // A parallel loop's AggregateException shows the failure inside it.
        var parallel = new AggregateException(new AggregateException(new IOException("No space left on device")));
        Assert.Equal("No space left on device", RetriBooru.Runtime.ExceptionCause.Of(parallel).Message);
    }
}

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
        foreach (var expected in new[] { "TorchSharp", "0.107.0", "libtorch", "2.10.0", "device", "cpu", "threads", "libstdc++ fix", "GFLOP/s" })
            Assert.Contains(expected, output);
    }

    [Fact]
    public void Unknown_verb_is_a_usage_error()
    {
        var console = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["no-such-verb"], console));
    }
}

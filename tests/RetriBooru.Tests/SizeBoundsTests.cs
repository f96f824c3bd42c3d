using RetriBooru.Settings;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>Sizes read from files are bounded before anything is allocated; every refusal names the file and the field.</summary>
public class SizeBoundsTests
{
    /// <summary>A saved small model whose config <paramref name="file"/> has the fields of <paramref name="patch"/> (a JSON object) replaced.</summary>
    static string SavedModelWith(TempDir dir, string file, string patch)
    {
        using (var model = WeightsTests.SmallModel(1)) ModelStore.SaveDiffusers(model, dir.Path);
        var path = Path.Combine(dir.Path, file);
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (var (field, value) in JsonNode.Parse(patch)!.AsObject()) config[field] = value?.DeepClone();
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Theory]
    [InlineData("unet/config.json", """{"block_out_channels": [1000000, 1000000]}""", "block_out_channels 1000000 is outside")]
    [InlineData("unet/config.json", """{"block_out_channels": [8192, 8192], "layers_per_block": 64}""", "the U-Net would have ~")]
    [InlineData("unet/config.json", """{"layers_per_block": 100000}""", "layers_per_block 100000 is outside")]
    [InlineData("unet/config.json", """{"attention_head_dim": 2000000000}""", "attention_head_dim 2000000000 is outside")]
    [InlineData("unet/config.json", """{"attention_head_dim": [2, 4]}""", "one head count")]
    [InlineData("unet/config.json", """{"sample_size": 30000000000}""", "field 'sample_size' is 30000000000, not an integer")]
    [InlineData("unet/config.json", """{"layers_per_block": "two"}""", "field 'layers_per_block' is \"two\", not an integer")]
    [InlineData("unet/config.json", """{"down_block_types": [1, 2]}""", "field 'down_block_types' has entries that are not a string")]
    [InlineData("text_encoder/config.json", """{"vocab_size": 2000000000}""", "vocab_size 2000000000 is outside")]
    [InlineData("text_encoder/config.json", """{"hidden_size": 8192, "num_hidden_layers": 64, "intermediate_size": 32768}""", "the text encoder would have ~")]
    [InlineData("text_encoder/config.json", """{"num_hidden_layers": 1000000}""", "num_hidden_layers 1000000 is outside")]
    [InlineData("text_encoder/config.json", """{"hidden_size": 1.5}""", "field 'hidden_size' is 1.5, not an integer")]
    [InlineData("vae/config.json", """{"block_out_channels": [8, 16, 32, 64, 128, 256, 512, 1024, 2048]}""", "at most 8")]
    [InlineData("scheduler/scheduler_config.json", """{"num_train_timesteps": 2000000000}""", "num_train_timesteps 2000000000 is outside")]
    [InlineData("scheduler/scheduler_config.json", """{"beta_end": 7}""", "beta_end 7")]
    public void Absurd_or_mistyped_config_values_are_refused_naming_the_file_and_field(string file, string patch, string problem)
    {
        using var dir = new TempDir();
        var path = SavedModelWith(dir, file, patch);
        var error = Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose());
        Assert.Contains(path, error.Message);
        Assert.Contains(problem, error.Message);
        Assert.DoesNotContain("\n", error.Message);
    }

    [Fact]
    public void A_config_that_is_not_json_names_the_file()
    {
        using var dir = new TempDir();
        using (var model = WeightsTests.SmallModel(1)) ModelStore.SaveDiffusers(model, dir.Path);
        var path = Path.Combine(dir.Path, "text_encoder", "config.json");
        File.WriteAllText(path, "{\"vocab_size\": 12,");
        var error = Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose());
        Assert.Contains($"{path}: not a valid config", error.Message);
        File.WriteAllBytes(path, [0x7B, 0xFF, 0xFE, 0x7D]);
        Assert.Contains($"{path}: not UTF-8", Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose()).Message);
    }

    [Fact]
    public void The_command_line_shows_the_message_that_names_the_file_not_only_its_json_cause()
    {
        using var dir = new TempDir();
        var path = SavedModelWith(dir, "unet/config.json", "{}");
        File.WriteAllText(path, "{\"block_out_channels\": [1,");
        var console = new TestConsole().Width(400);
        Assert.Equal(1, RetriBooru.Cli.CliApp.Run(["train-base", "--data", dir.File("data"), "--out", dir.File("out"), "--init", dir.Path], console));
        Assert.Contains($"error: {path}: not a valid config (", console.Output);
    }

    [Fact]
    public void A_manifest_example_with_an_absurd_number_of_references_is_refused_with_its_line()
    {
        using var dir = new TempDir();
        var reference = new RetriBooru.Data.ReferenceImage { Id = "r", Image = "images/r.png", Concept = Concept.Face, SourceId = "s" };
        var example = new RetriBooru.Data.TrainingExample
        {
            Target = "t", Image = "images/t.png", Prompt = "1girl", Split = "seen", Scheme = "b", Character = "c", ClothingId = "c/0",
            References = Enumerable.Repeat(reference, 100_000).ToList(),
        };
        var path = dir.File("manifest.jsonl");
        File.WriteAllLines(path, ["", RetriBooru.Data.ManifestReader.Serialize(example with { References = [reference] }), RetriBooru.Data.ManifestReader.Serialize(example)]);
        var error = Assert.Throws<InvalidDataException>(() => RetriBooru.Data.ManifestReader.Read(path));
        Assert.Equal($"{path}:3: 100000 references, more than the 64 an example may have", error.Message);
    }

    [Fact]
    public void The_model_index_and_a_checkpoints_metadata_config_are_bounded_too()
    {
        using var dir = new TempDir();
        using var model = WeightsTests.SmallModel(1);
        ModelStore.SaveDiffusers(model, dir.Path);
        var index = Path.Combine(dir.Path, "model_index.json");
        var node = JsonNode.Parse(File.ReadAllText(index))!;
        node["retribooru"]!["image_size"] = 1_000_000;
        File.WriteAllText(index, node.ToJsonString());
        var error = Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose());
        Assert.Contains($"{index} (retribooru): image_size 1000000 is outside", error.Message);

        // A single-file checkpoint carries its config in the header metadata.
        var config = model.Config with { Schedule = model.Config.Schedule with { NumTrainTimesteps = 2_000_000_000 } };
        var single = dir.File("crafted.safetensors");
        SafeTensors.Save(single, new Dictionary<string, TorchSharp.torch.Tensor>(), new Dictionary<string, string>
        {
            ["retribooru.config"] = JsonSerializer.Serialize(config, RetriBooru.Data.WorkbenchJson.Lines),
            ["retribooru.tags"] = ((RetriBooru.Modeling.Tokenizers.TagTokenizer)model.Tokenizer).ToJson(),
        });
        error = Assert.Throws<InvalidDataException>(() => ModelStore.LoadSingleFile(single).Dispose());
        Assert.Contains($"{single} (metadata 'retribooru.config'): num_train_timesteps 2000000000 is outside", error.Message);
    }

    [Fact]
    public void A_tag_vocabulary_with_an_absurd_max_length_or_wrong_types_is_refused()
    {
        using var dir = new TempDir();
        var path = SavedModelWith(dir, "tokenizer/tags.json", """{"max_length": 1000000000}""");
        Assert.Contains($"{path}: max_length 1000000000 is outside", Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose()).Message);
        File.WriteAllText(path, """{"max_length": 8, "tokens": [1, 2]}""");
        var error = Assert.Throws<InvalidDataException>(() => ModelStore.LoadDiffusers(dir.Path).Dispose());
        Assert.Contains($"{path}: not a tag vocabulary", error.Message);
        Assert.Contains("$.tokens", error.Message);
    }

    [Fact]
    public void Branch_json_heads_and_kind_are_checked_against_the_unet()
    {
        using var dir = new TempDir();
        using (var model = WeightsTests.SmallModel(1))
            ReferenceModelStore.Save(model, ReferenceModels.Create("retrinet", model), dir.Path);
        var path = Path.Combine(dir.Path, ReferenceModelStore.BranchConfig);
        var original = File.ReadAllText(path);

        var node = JsonNode.Parse(original)!;
        node["retrinet"]!["attention_heads"] = 1_000_000_000;
        File.WriteAllText(path, node.ToJsonString());
        Assert.Contains($"{path}: retrinet.attention_heads 1000000000 is outside", Assert.Throws<InvalidDataException>(() => ReferenceModelStore.Load(dir.Path)).Message);

        node["retrinet"]!["attention_heads"] = 3;
        File.WriteAllText(path, node.ToJsonString());
        Assert.Contains($"{path}: retrinet.attention_heads 3 does not divide", Assert.Throws<InvalidDataException>(() => ReferenceModelStore.Load(dir.Path)).Message);

        File.WriteAllText(path, """{"kind": 5}""");
        Assert.Contains($"{path}: not a branch config", Assert.Throws<InvalidDataException>(() => ReferenceModelStore.Load(dir.Path)).Message);
        File.WriteAllText(path, """{"kind": "retrinett"}""");
        Assert.Contains($"{path}: unknown model 'retrinett' (did you mean 'retrinet'?)", Assert.Throws<InvalidDataException>(() => ReferenceModelStore.Load(dir.Path)).Message);
    }

    [Fact]
    public void A_config_built_in_code_is_bounded_before_any_layer_is_allocated()
    {
        Torch.Load();
        var tokenizer = new RetriBooru.Modeling.Tokenizers.TagTokenizer(["a"], maxLength: 8);
        var huge = ModelConfigs.Tiny with { Unet = ModelConfigs.Tiny.Unet with { BlockOutChannels = [8192, 8192, 8192], LayersPerBlock = 64, NormNumGroups = 8 } };
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<InvalidDataException>(() => new DiffusionModel(huge, tokenizer));
        Assert.Contains("model config 'tiny': the U-Net would have", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "the refusal must come before the allocation");
    }

    [Theory]
    [InlineData("""{"model_type": "clip_text_model", "hidden_size": 1000000}""", "hidden_size 1000000 is outside")]
    [InlineData("""{"model_type": "clip_text_model", "vocab_size": 900000, "hidden_size": 8192, "num_hidden_layers": 64}""", "the CLIP text tower would have ~")]
    [InlineData("""{"model_type": "clip_vision_model", "image_size": 4096, "patch_size": 1, "hidden_size": 8192, "num_attention_heads": 8}""", "the CLIP vision tower would have ~")]
    [InlineData("""{"model_type": "clip_text_model", "hidden_act": 5}""", "field 'hidden_act' is 5, not a string")]
    [InlineData("""{"model_type": "clip_text_model", "layer_norm_eps": "small"}""", "field 'layer_norm_eps' is \"small\", not a number")]
    [InlineData("""{"model_type": 7}""", "field 'model_type' is 7, not a string")]
    public void A_clip_config_for_the_metrics_is_bounded_and_typed(string json, string problem)
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, json);
        var error = Assert.Throws<InvalidDataException>(() => DiffusersConfigJson.ReadClip(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void An_attribute_probe_description_with_absurd_channels_is_refused_before_building_the_network()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("probe.json"), """{"Attributes": [{"Name": "hair", "Values": ["red", "blue"], "Tags": null}], "Options": {"ImageSize": 64, "Channels": [16, 1000000]}}""");
        File.WriteAllBytes(dir.File("probe.weights"), []);
        var error = Assert.Throws<InvalidDataException>(() => RetriBooru.Metrics.Vqa.AttributeProbe.Load(dir.Path));
        Assert.Contains($"{dir.File("probe.json")}: options.channels 1000000 is outside", error.Message);
    }

    [Fact]
    public void Attribute_probe_weights_that_are_not_weights_are_refused_naming_the_file()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("probe.json"), """{"Attributes": [{"Name": "hair", "Values": ["red", "blue"], "Tags": null}], "Options": {"ImageSize": 32, "Channels": [4, 8]}}""");
        File.WriteAllText(dir.File("probe.weights"), "not weights");
        var error = Assert.Throws<InvalidDataException>(() => RetriBooru.Metrics.Vqa.AttributeProbe.Load(dir.Path));
        Assert.StartsWith($"{dir.File("probe.weights")}: not this probe's weights", error.Message);
    }

    static string WriteRawHeader(TempDir dir, byte[] header, int dataBytes)
    {
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        var path = dir.File("crafted.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":["0","16"]}}""", "data_offsets [\"0\", \"16\"] that are not integers")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}""", "17 dimensions, more than 16")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}""", "needs 73786976294838206464 bytes")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,9223372036854775807]}}""", "outside the 16-byte data section")]
    [InlineData("""{"w":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}}""", "invalid shape dimension")]
    public void Safetensors_offsets_and_shapes_of_the_wrong_type_or_size_are_refused(string header, string problem)
    {
        using var dir = new TempDir();
        var path = WriteRawHeader(dir, Encoding.UTF8.GetBytes(header), 16);
        var error = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Contains($"{path}: not a valid safetensors file: ", error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void A_safetensors_header_that_is_not_utf8_is_named_as_such()
    {
        using var dir = new TempDir();
        var header = Encoding.UTF8.GetBytes("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":"XX"}}""");
        header[^4] = 0xFF; // inside a metadata string
        var path = WriteRawHeader(dir, header, 4);
        Assert.Contains($"{path}: not a valid safetensors file: header is not UTF-8", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path)).Message);
    }
}

/// <summary>Named pipes and devices given as weights, configs or tokenizers are refused before they are opened.</summary>
public class NonRegularFileTests
{
    static void MakeFifo(string path)
    {
        var (code, output) = NotebookRunner.Run("mkfifo", [path], Path.GetDirectoryName(path)!, TimeSpan.FromSeconds(10));
        Assert.True(code == 0, $"mkfifo failed: {output}");
    }

    /// <summary>Runs <paramref name="action"/> with a deadline: reading a FIFO would block forever.</summary>
    static Exception Refusal(Action action)
    {
        var task = Task.Run(action);
        Assert.True(((IAsyncResult)task).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(30)), "the call blocked: a named pipe was opened");
        return Assert.IsAssignableFrom<Exception>(task.Exception?.GetBaseException());
    }

    [Fact]
    public void A_named_pipe_as_a_weights_file_is_refused_not_read()
    {
        using var dir = new TempDir();
        var fifo = dir.File("model.safetensors");
        MakeFifo(fifo);
        var error = Refusal(() => SafeTensorsFile.Open(fifo).Dispose());
        Assert.IsType<InvalidDataException>(error);
        Assert.Equal($"{fifo}: is a named pipe (FIFO), not a regular file; refusing to read it as a safetensors file", error.Message);
    }

    [Fact]
    public void A_named_pipe_as_a_config_or_tokenizer_file_is_refused_not_read()
    {
        using var dir = new TempDir();
        using (var model = WeightsTests.SmallModel(1)) ModelStore.SaveDiffusers(model, dir.Path);
        foreach (var file in new[] { "unet/config.json", "tokenizer/tags.json", "scheduler/scheduler_config.json", "text_encoder/model.safetensors" })
        {
            var path = Path.Combine(dir.Path, file);
            var saved = File.ReadAllBytes(path);
            File.Delete(path);
            MakeFifo(path);
            var error = Refusal(() => ModelStore.LoadDiffusers(dir.Path).Dispose());
            Assert.Contains($"{path}: is a named pipe (FIFO)", error.Message);
            File.Delete(path);
            File.WriteAllBytes(path, saved);
        }
    }

    [Fact]
    public void A_character_device_as_a_weights_file_is_refused()
    {
        if (!File.Exists("/dev/zero")) return; // not Linux
        var error = Refusal(() => SafeTensorsFile.Open("/dev/zero").Dispose());
        Assert.Contains("/dev/zero: is a character device", error.Message);
    }

    [Fact]
    public async Task Train_base_init_from_a_named_pipe_fails_with_one_line()
    {
        using var dir = new TempDir();
        var fifo = dir.File("init.safetensors");
        MakeFifo(fifo);
        var console = new TestConsole();
        var task = Task.Run(() => RetriBooru.Cli.CliApp.Run(["train-base", "--data", dir.File("data"), "--out", dir.File("out"), "--init", fifo], console));
        Assert.True(await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60))) == task, "train-base blocked on the named pipe");
        Assert.Equal(1, await task);
        Assert.Contains($"{fifo}: is a named pipe (FIFO)", console.Output.Replace("\n", ""));
    }
}
